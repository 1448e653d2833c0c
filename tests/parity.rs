//! The eBPF tracepoint rung and fanotify, run side by side on the same
//! filesystem and workload, journal the same changed files.

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::*;

/// Paths of regular files the journal holds as changed entries.
fn changed_files(scratch_journal: &[serde_json::Value], src: &Path) -> BTreeSet<String> {
    scratch_journal
        .iter()
        .filter(|r| r["scope"] == "entry" && r["kind"] != "delete" && r["kind"] != "rename-from")
        .filter_map(|r| r["path"].as_str())
        .filter(|p| src.join(p).is_file())
        .map(str::to_string)
        .collect()
}

#[test]
fn ebpf_and_fanotify_journal_the_same_changed_files() {
    support::root_or_skip!();
    let ebpf = Scratch::ext4();
    let src = ebpf.src();
    workload::seed(&src);
    // A second agent on the same source, with its own journal and replica.
    let fanotify = Scratch::tmpfs();
    let config_ebpf = write_config(&ebpf, &ebpf.replica().display().to_string(), None, "");
    use_backend(&config_ebpf, "ebpf");
    let text = std::fs::read_to_string(&config_ebpf)
        .unwrap()
        .replace("backend = \"ebpf\"", "backend = \"fanotify\"")
        .replace(
            &ebpf.journal().display().to_string(),
            &fanotify.journal().display().to_string(),
        )
        .replace(
            &ebpf.replica().display().to_string(),
            &fanotify.replica().display().to_string(),
        );
    let config_fanotify = fanotify.path().join("fanotify.toml");
    std::fs::write(&config_fanotify, text).unwrap();
    let agent_ebpf = Agent::start(&config_ebpf, &ebpf);
    let agent_fanotify = Agent::start(&config_fanotify, &fanotify);
    assert_converges(&src, &ebpf.replica(), &agent_ebpf);
    assert_converges(&src, &fanotify.replica(), &agent_fanotify);

    for job in ["alpha", "beta"] {
        for i in 0..10 {
            std::fs::write(
                src.join(format!("jobs/{job}/builds/1/new-{i}")),
                format!("{i}\n"),
            )
            .unwrap();
        }
        append(&src.join(format!("jobs/{job}/builds/1/log")), "Finished\n");
        std::fs::set_permissions(
            src.join(format!("jobs/{job}/config.xml")),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
    }
    std::fs::write(src.join("jobs/doomed/builds/1/archive/app.jar"), "rebuilt").unwrap();
    assert_converges(&src, &ebpf.replica(), &agent_ebpf);
    assert_converges(&src, &fanotify.replica(), &agent_fanotify);

    let by_ebpf = changed_files(&journal_log(&ebpf), &src);
    let by_fanotify = changed_files(&journal_log(&fanotify), &src);
    assert_eq!(by_ebpf.len(), 25, "{by_ebpf:#?}");
    assert_eq!(by_ebpf, by_fanotify);
    agent_ebpf.stop();
    agent_fanotify.stop();
}
