//! The workload the end-to-end tests replay: a Jenkins-home-shaped tree and
//! every kind of change made to it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use super::append;

/// A Jenkins-home-shaped starting tree.
pub fn seed(src: &Path) {
    for job in ["alpha", "beta", "doomed"] {
        std::fs::create_dir_all(src.join(format!("jobs/{job}/builds/1/archive"))).unwrap();
        std::fs::write(
            src.join(format!("jobs/{job}/config.xml")),
            format!("<project>{job}</project>\n"),
        )
        .unwrap();
        std::fs::write(src.join(format!("jobs/{job}/builds/1/log")), "Started\n").unwrap();
        std::fs::write(
            src.join(format!("jobs/{job}/builds/1/archive/app.jar")),
            vec![7u8; 10_000],
        )
        .unwrap();
        symlink("builds/1", src.join(format!("jobs/{job}/lastSuccessful"))).unwrap();
        std::fs::write(src.join(format!("jobs/{job}/nextBuildNumber")), "2\n").unwrap();
    }
}

/// Every kind of change a backup must carry: create, append, overwrite,
/// truncate, chmod, rename of a file and of a directory with contents,
/// `rm -rf`, temp-file-then-rename-over, odd names, deep mkdir, symlinks,
/// a hard link, a fifo, a device node, a sparse file. Returns after the last
/// syscall.
pub fn churn(src: &Path) {
    // create, append, overwrite, chmod
    std::fs::write(src.join("jobs/alpha/builds/1/new.txt"), "fresh\n").unwrap();
    append(&src.join("jobs/alpha/builds/1/log"), "Step 1\nStep 2\n");
    std::fs::write(src.join("jobs/beta/builds/1/log"), "rewritten\n").unwrap();
    std::fs::set_permissions(
        src.join("jobs/alpha/config.xml"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(src.join("jobs/alpha/builds/1/archive/app.jar"))
        .unwrap()
        .set_len(100)
        .unwrap();
    // rename a file, rename a directory with contents
    std::fs::rename(
        src.join("jobs/alpha/builds/1/new.txt"),
        src.join("jobs/alpha/builds/1/renamed.txt"),
    )
    .unwrap();
    std::fs::rename(src.join("jobs/beta"), src.join("jobs/beta-renamed")).unwrap();
    // rm -rf of a directory tree
    std::fs::remove_dir_all(src.join("jobs/doomed")).unwrap();
    // temp file + rename over the existing file, as Jenkins writes config.xml
    let tmp = src.join("jobs/alpha/config.xml.tmp");
    std::fs::write(&tmp, "<project>alpha v2</project>\n").unwrap();
    std::fs::rename(&tmp, src.join("jobs/alpha/config.xml")).unwrap();
    // names with a space, a newline and a non-UTF-8 byte
    std::fs::write(src.join("jobs/alpha/with space.txt"), "s").unwrap();
    std::fs::write(src.join("jobs/alpha/new\nline.txt"), "n").unwrap();
    std::fs::write(
        src.join(OsStr::from_bytes(b"jobs/alpha/latin1-\xe9t\xe9.txt")),
        "l",
    )
    .unwrap();
    // a new build: deep mkdir, files, a symlink repointed
    std::fs::create_dir_all(src.join("jobs/alpha/builds/2/archive/deep/er")).unwrap();
    std::fs::write(
        src.join("jobs/alpha/builds/2/archive/deep/er/x.bin"),
        vec![1u8; 4096],
    )
    .unwrap();
    std::fs::remove_file(src.join("jobs/alpha/lastSuccessful")).unwrap();
    symlink("builds/2", src.join("jobs/alpha/lastSuccessful")).unwrap();
    // same size, mtime set back (as `touch -r`, `cp -p` or `tar -x` leave it):
    // rsync's quick check alone would miss it
    let counter = src.join("jobs/alpha/nextBuildNumber");
    let mtime = std::fs::metadata(&counter).unwrap().modified().unwrap();
    std::fs::write(&counter, "3\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&counter)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    // a hard link, and a file in the root itself
    std::fs::hard_link(
        src.join("jobs/alpha/builds/1/log"),
        src.join("jobs/alpha/log-link"),
    )
    .unwrap();
    std::fs::write(src.join("queue.xml"), "<queue/>\n").unwrap();
    // a fifo and a character device (rsync -a carries them as such: -D)
    super::sh(
        "mkfifo",
        &[src.join("jobs/alpha/control.fifo").to_str().unwrap()],
    );
    super::sh(
        "mknod",
        &[src.join("jobs/alpha/null").to_str().unwrap(), "c", "1", "3"],
    );
    // a sparse file: 1 MiB hole, then data
    let sparse = std::fs::File::create(src.join("jobs/alpha/sparse.img")).unwrap();
    sparse.set_len(1 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"tail", (1 << 20) - 4).unwrap();
}
