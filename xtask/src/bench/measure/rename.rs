//! A renamed job (issue 16): the tree's largest job directory renamed
//! (`jobs/X` → `jobs/X-renamed`), the time until the replica equals the
//! source, and what the replica's disk wrote meanwhile. The replica is an
//! ext4 image of its own, so its `lifetime_write_kbytes` (sysfs, after a
//! `sync`) counts every byte a tool made the target write: the job again
//! for a delete + copy, a few metadata blocks for a rename. The job is
//! renamed back afterwards (untimed) so that later change sets find it.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::super::results::RenameTime;
use super::super::tools;
use super::{bytes_note, Bench, Destination};

impl Bench {
    /// Renames the largest job and waits for `tool` to replicate it to
    /// `destination` (for full-scan rsync: one `rsync -a --delete`), then
    /// renames it back.
    pub(super) fn rename_job(
        &mut self,
        tool: &str,
        run: u32,
        destination: Destination,
    ) -> anyhow::Result<()> {
        let (job, files) = largest_job(&self.src)?;
        let bytes = files.iter().map(|(_, size)| size).sum::<u64>();
        let renamed = format!("{job}-renamed");
        let written_before = disk_written_kib(&self.dst)?;
        let traffic = self.traffic(destination);
        std::fs::rename(self.src.join(&job), self.src.join(&renamed))
            .with_context(|| format!("cannot rename {job}"))?;
        let seconds = self.replicate(tool, run, (&job, &renamed), &files, destination)?;
        let written_kib = disk_written_kib(&self.dst)?.saturating_sub(written_before);
        let traffic = self.traffic_since(traffic);
        eprintln!(
            "bench: {tool}: renamed {job} ({} files, {bytes} bytes): replica equal after {seconds:.2} s, replica disk wrote {written_kib} KiB{}",
            files.len(),
            bytes_note(traffic)
        );
        std::fs::rename(self.src.join(&renamed), self.src.join(&job))
            .with_context(|| format!("cannot rename {renamed} back"))?;
        self.replicate(tool, run, (&renamed, &job), &files, destination)?;
        self.results.renames.push(RenameTime {
            tool: tool.into(),
            run,
            files: files.len() as u64,
            bytes,
            seconds,
            written_kib,
            wire_bytes: traffic.map(|t| t.wire),
            data_bytes: traffic.map(|t| t.data),
        });
        Ok(())
    }

    /// Seconds until the replica has the job moved from `old` to `job`
    /// (files relative to it): every file at its new place, and nothing
    /// left at the old one.
    fn replicate(
        &mut self,
        tool: &str,
        run: u32,
        (old, job): (&str, &str),
        files: &[(String, u64)],
        destination: Destination,
    ) -> anyhow::Result<f64> {
        if tool.starts_with("rsync") {
            return tools::full_rsync_to(&self.src, &self.target(destination));
        }
        let mut touched: BTreeSet<String> =
            files.iter().map(|(f, _)| format!("{job}/{f}")).collect();
        touched.insert(old.to_string());
        let done = tools::wait_replica(
            &self.src,
            &self.dst,
            &touched,
            Instant::now(),
            Duration::from_secs(600),
        )?;
        self.note_unconverged(tool, run, &format!("renamed job {job}"), &done);
        Ok(done.seconds)
    }
}

/// Regular files below a directory: (path relative to it, size in bytes).
type Files = Vec<(String, u64)>;

/// The job directory under `src/jobs` with the most bytes: its root-relative
/// path and its regular files.
fn largest_job(src: &Path) -> anyhow::Result<(String, Files)> {
    let mut best: Option<(String, Files, u64)> = None;
    for entry in std::fs::read_dir(src.join("jobs")).context("no jobs directory")? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        files_below(&entry.path(), "", &mut files)?;
        let bytes = files.iter().map(|(_, size)| size).sum::<u64>();
        if best.as_ref().is_none_or(|(_, _, b)| bytes > *b) {
            let name = format!("jobs/{}", entry.file_name().to_string_lossy());
            best = Some((name, files, bytes));
        }
    }
    let (job, files, _) = best.context("no job directory")?;
    Ok((job, files))
}

fn files_below(dir: &Path, prefix: &str, out: &mut Vec<(String, u64)>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let meta = entry.metadata()?;
        if meta.is_dir() {
            files_below(&entry.path(), &format!("{name}/"), out)?;
        } else if meta.is_file() {
            out.push((name, meta.len()));
        }
    }
    Ok(())
}

/// KiB the ext4 filesystem mounted at `mount` has written since it was
/// made (`/sys/fs/ext4/<dev>/lifetime_write_kbytes`), after a `sync`.
fn disk_written_kib(mount: &Path) -> anyhow::Result<u64> {
    std::process::Command::new("sync").status()?;
    let dev = std::fs::metadata(mount)?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let block = std::fs::read_link(format!("/sys/dev/block/{major}:{minor}"))?;
    let name = block.file_name().context("a block device name")?;
    let path = Path::new("/sys/fs/ext4")
        .join(name)
        .join("lifetime_write_kbytes");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.trim().parse()?)
}
