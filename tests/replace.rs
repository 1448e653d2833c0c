//! A path whose directory is replaced between two pushes — deleted and made
//! again, replaced by a file or a symlink and back, renamed away with
//! another put in its place — ends up on the replica as it is in the
//! source: nothing the old directory held survives there (issue 14, item 4:
//! a `git checkout` between two releases left the files of recreated
//! directories on the target, with nothing pending and health ok).
//!
//! Every tree is made before the agent starts, so the fanotify backend's
//! lazy directory index has never learnt its directories: their own
//! entries' deletions are read after they are gone and cannot be journaled,
//! and the push of the replaced path is all that can carry them. A long
//! batch delay puts the removal and the re-creation into one push. Each
//! case runs on fanotify (tmpfs) and on the eBPF tracepoint rung (ext4: it
//! refuses tmpfs).

mod support;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use support::*;

/// Long enough that every change of a scenario lands in one push (ms).
const BATCH_DELAY_MS: u64 = 3000;

/// A fresh filesystem for `backend`.
fn scratch_for(backend: &str) -> Scratch {
    match backend {
        "ebpf" => Scratch::ext4(),
        _ => Scratch::tmpfs(),
    }
}

/// Writes `files` (root-relative path, content) under `root`, making their
/// directories.
fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// Seeds the source with `before` (made before the agent starts), starts the
/// agent on `backend` with a long batch delay, waits for the first full
/// sync, runs `change` on the source, and asserts that the replica
/// converges to the source (checksums), that nothing stays pending and that
/// the target recorded no error.
fn replaced_between_pushes(backend: &str, before: &[(&str, &str)], change: impl FnOnce(&Path)) {
    let scratch = scratch_for(backend);
    let src = scratch.src();
    write_tree(&src, before);
    let config = write_config(&scratch, &scratch.replica().display().to_string(), None, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "batch_delay_ms = 200",
        &format!("batch_delay_ms = {BATCH_DELAY_MS}"),
    );
    std::fs::write(&config, text).unwrap();
    use_backend(&config, backend);
    let agent = start_and_sync(&config, &scratch);
    assert_eq!(status(&scratch).backend, backend);

    change(&src);
    assert_converges(&src, &scratch.replica(), &agent);
    wait_until(
        Duration::from_secs(10),
        "the last cursor to be saved",
        || {
            status(&scratch)
                .first_target()
                .is_some_and(|t| t.pending == 0)
        },
    );
    let pending = sh(
        env!("CARGO_BIN_EXE_fsjournal"),
        &[
            "pending",
            "--json",
            "--journal",
            scratch.journal().to_str().unwrap(),
        ],
    );
    assert_eq!(pending.trim(), "", "nothing stays pending");
    let after = status(&scratch);
    assert!(after.target().last_error.is_none(), "{after:#?}");
    assert_eq!(
        differences(&src, &scratch.replica()),
        "",
        "the replica stays equal to the source"
    );
    agent.stop();
}

/// `rm -rf dir; mkdir dir; write C', D`: A and B must go; a directory made
/// again empty must be empty on the replica too.
fn directory_recreated_with_other_files(backend: &str) {
    replaced_between_pushes(
        backend,
        &[
            ("dir/A.txt", "a\n"),
            ("dir/B.txt", "b\n"),
            ("dir/C.txt", "c\n"),
            ("emptied/A.txt", "a\n"),
            ("emptied/sub/B.txt", "b\n"),
            ("keep.txt", "k\n"),
        ],
        |src| {
            std::fs::remove_dir_all(src.join("dir")).unwrap();
            std::fs::create_dir(src.join("dir")).unwrap();
            std::fs::write(src.join("dir/C.txt"), "c, the next release\n").unwrap();
            std::fs::write(src.join("dir/D.txt"), "d\n").unwrap();

            std::fs::remove_dir_all(src.join("emptied")).unwrap();
            std::fs::create_dir(src.join("emptied")).unwrap();
        },
    );
}

#[test]
fn fanotify_directory_recreated_with_other_files_loses_the_old_ones() {
    support::root_or_skip!();
    directory_recreated_with_other_files("fanotify");
}

#[test]
fn ebpf_directory_recreated_with_other_files_loses_the_old_ones() {
    support::root_or_skip!();
    directory_recreated_with_other_files("ebpf");
}

/// What `git checkout` does between two releases: every file that goes is
/// unlinked, directories left empty are removed bottom-up, then the new
/// release's files are written, making directories as needed (some under
/// the same names as before, with other sets of files).
fn checkout_like_replacement_of_nested_directories(backend: &str) {
    let old_release = [
        ("lib/mod.txt", "mod 1\n"),
        ("lib/a.txt", "a 1\n"),
        ("lib/util/x.txt", "x 1\n"),
        ("lib/util/y.txt", "y 1\n"),
        ("lib/util/deep/z.txt", "z 1\n"),
        ("docs/guide.txt", "guide\n"),
        ("docs/api/index.txt", "index 1\n"),
        ("docs/api/old.txt", "old\n"),
        ("README.txt", "readme 1\n"),
    ];
    let new_release = [
        ("lib/mod.txt", "mod 2\n"),
        ("lib/util/w.txt", "w 2\n"),
        ("lib/util/deep/v.txt", "v 2\n"),
        ("lib/net/n.txt", "n 2\n"),
        ("docs/guide.txt", "guide\n"),
        ("docs/api/new.txt", "new\n"),
        ("README.txt", "readme 2\n"),
    ];
    replaced_between_pushes(backend, &old_release, |src| {
        for (path, _) in old_release {
            if path != "docs/guide.txt" {
                std::fs::remove_file(src.join(path)).unwrap();
            }
        }
        for dir in ["lib/util/deep", "lib/util", "lib", "docs/api"] {
            std::fs::remove_dir(src.join(dir)).unwrap();
        }
        write_tree(src, &new_release);
    });
}

#[test]
fn fanotify_checkout_like_replacement_of_nested_directories() {
    support::root_or_skip!();
    checkout_like_replacement_of_nested_directories("fanotify");
}

#[test]
fn ebpf_checkout_like_replacement_of_nested_directories() {
    support::root_or_skip!();
    checkout_like_replacement_of_nested_directories("ebpf");
}

/// A file becomes a directory, a directory a file, a directory a file and
/// a directory again, a file a directory and a file again.
fn file_and_directory_replace_each_other(backend: &str) {
    replaced_between_pushes(
        backend,
        &[
            ("was-file", "a file\n"),
            ("was-dir/A.txt", "a\n"),
            ("was-dir/B.txt", "b\n"),
            ("dir-file-dir/A.txt", "a\n"),
            ("dir-file-dir/B.txt", "b\n"),
            ("file-dir-file", "a file\n"),
        ],
        |src| {
            std::fs::remove_file(src.join("was-file")).unwrap();
            write_tree(src, &[("was-file/inside.txt", "now a directory\n")]);

            std::fs::remove_dir_all(src.join("was-dir")).unwrap();
            std::fs::write(src.join("was-dir"), "now a file\n").unwrap();

            std::fs::remove_dir_all(src.join("dir-file-dir")).unwrap();
            std::fs::write(src.join("dir-file-dir"), "a file for a moment\n").unwrap();
            std::fs::remove_file(src.join("dir-file-dir")).unwrap();
            write_tree(src, &[("dir-file-dir/C.txt", "c\n")]);

            std::fs::remove_file(src.join("file-dir-file")).unwrap();
            write_tree(src, &[("file-dir-file/inside.txt", "for a moment\n")]);
            std::fs::remove_dir_all(src.join("file-dir-file")).unwrap();
            std::fs::write(src.join("file-dir-file"), "a file again\n").unwrap();
        },
    );
}

#[test]
fn fanotify_file_and_directory_replace_each_other_at_one_path() {
    support::root_or_skip!();
    file_and_directory_replace_each_other("fanotify");
}

#[test]
fn ebpf_file_and_directory_replace_each_other_at_one_path() {
    support::root_or_skip!();
    file_and_directory_replace_each_other("ebpf");
}

/// A directory renamed away and another renamed in at its name; a directory
/// renamed away and a new one made at its name.
fn directory_renamed_away_and_replaced(backend: &str) {
    replaced_between_pushes(
        backend,
        &[
            ("dir/A.txt", "a\n"),
            ("dir/B.txt", "b\n"),
            ("staging/X.txt", "x\n"),
            ("dir2/A.txt", "a\n"),
            ("dir2/B.txt", "b\n"),
        ],
        |src| {
            std::fs::rename(src.join("dir"), src.join("dir.old")).unwrap();
            std::fs::rename(src.join("staging"), src.join("dir")).unwrap();

            std::fs::rename(src.join("dir2"), src.join("dir2.old")).unwrap();
            write_tree(src, &[("dir2/C.txt", "c\n")]);
        },
    );
}

#[test]
fn fanotify_directory_renamed_away_and_another_put_at_its_name() {
    support::root_or_skip!();
    directory_renamed_away_and_replaced("fanotify");
}

#[test]
fn ebpf_directory_renamed_away_and_another_put_at_its_name() {
    support::root_or_skip!();
    directory_renamed_away_and_replaced("ebpf");
}

/// A directory replaced by a symlink; another replaced by a symlink and
/// then by a directory again.
fn directory_replaced_by_a_symlink(backend: &str) {
    replaced_between_pushes(
        backend,
        &[
            ("dir/A.txt", "a\n"),
            ("dir/B.txt", "b\n"),
            ("dir-link-dir/A.txt", "a\n"),
            ("dir-link-dir/B.txt", "b\n"),
            ("elsewhere/E.txt", "e\n"),
        ],
        |src| {
            std::fs::remove_dir_all(src.join("dir")).unwrap();
            symlink("elsewhere", src.join("dir")).unwrap();

            std::fs::remove_dir_all(src.join("dir-link-dir")).unwrap();
            symlink("elsewhere", src.join("dir-link-dir")).unwrap();
            std::fs::remove_file(src.join("dir-link-dir")).unwrap();
            write_tree(src, &[("dir-link-dir/C.txt", "c\n")]);
        },
    );
}

#[test]
fn fanotify_directory_replaced_by_a_symlink_and_back() {
    support::root_or_skip!();
    directory_replaced_by_a_symlink("fanotify");
}

#[test]
fn ebpf_directory_replaced_by_a_symlink_and_back() {
    support::root_or_skip!();
    directory_replaced_by_a_symlink("ebpf");
}
