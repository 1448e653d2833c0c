//! The operator's commands against a real agent (fanotify on a tmpfs): what
//! `status`, `targets`, `pending` and `log` print, in text and JSON, and what
//! the metrics endpoint serves, while a target is down and after it
//! recovers; `install`/`uninstall` into a scratch root; the `--help`
//! snapshot.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_fsjournal");

/// Runs `fsjournal ARGS`, asserts success, returns stdout.
fn fsjournal(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("FSJOURNAL_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsjournal {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `fsjournal ARGS`, asserts failure, returns stderr.
fn fsjournal_fails(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        !out.status.success(),
        "fsjournal {args:?} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `fsjournal log --json --journal J ARGS`: the records (start lines left out).
fn log_records(scratch: &Scratch, args: &[&str]) -> Vec<Value> {
    let journal = scratch.journal();
    let mut all = vec!["log", "--json", "--journal", journal.to_str().unwrap()];
    all.extend_from_slice(args);
    json_lines(&fsjournal(&all))
        .into_iter()
        .filter(|r| r.get("seq").is_some())
        .collect()
}

/// One HTTP/1.0 GET on 127.0.0.1: (status code, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head: {response:?}"));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    (code, body.to_string())
}

/// Scrapes `/metrics`: sample (`name{labels}`) → value.
fn scrape(port: u16) -> HashMap<String, f64> {
    let (code, body) = http_get(port, "/metrics");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.ends_with("# EOF\n"),
        "an OpenMetrics exposition ends with # EOF:\n{body}"
    );
    let mut samples = HashMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        samples.insert(
            name.to_string(),
            value
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("{e}: {line:?}")),
        );
    }
    samples
}

fn sample(samples: &HashMap<String, f64>, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("no sample {name} in {samples:#?}"))
}

#[test]
fn status_targets_pending_and_metrics_report_a_target_that_is_down_then_recovers() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    workload::seed(&scratch.src());
    let mut daemon = RsyncDaemon::start(&scratch.replica());
    let port = free_port();
    let metrics = format!("\n[metrics]\naddress = \"127.0.0.1:{port}\"\n");
    let config = write_config(
        &scratch,
        &daemon.url(),
        Some(&daemon.password_file()),
        &metrics,
    );
    use_backend(&config, "fanotify");
    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_for_full_syncs(&scratch, 1);
    let journal = scratch.journal();
    let journal = journal.to_str().unwrap();

    let m = scrape(port);
    assert_eq!(sample(&m, "fsjournal_agent_up"), 1.0);
    assert_eq!(
        sample(&m, r#"fsjournal_target_full_syncs_total{target="standby"}"#),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            r#"fsjournal_target_consecutive_failures{target="standby"}"#
        ),
        0.0
    );
    assert_eq!(http_get(port, "/elsewhere").0, 404);

    // The target goes down; changes pile up in the journal.
    daemon.pause();
    std::fs::write(
        scratch.src().join("jobs/alpha/config.xml"),
        "<project>v2</project>\n",
    )
    .unwrap();
    std::fs::create_dir(scratch.src().join("jobs/gamma")).unwrap();
    std::fs::write(
        scratch.src().join("jobs/gamma/config.xml"),
        "<project>gamma</project>\n",
    )
    .unwrap();
    append(
        &scratch.src().join("jobs/beta/builds/1/log"),
        "Finished: SUCCESS\n",
    );
    wait_until(
        Duration::from_secs(30),
        "a failed push with the changes pending",
        || {
            status(&scratch)
                .first_target()
                .is_some_and(|t| t.consecutive_failures >= 1 && t.pending >= 4)
        },
    );
    let status_json = status(&scratch);
    let pending = status_json.target().pending;

    let text = fsjournal(&["status", "--journal", journal]);
    assert!(
        text.contains(&format!("target    standby → {}", daemon.url())),
        "{text}"
    );
    assert!(text.contains("FAILED"), "{text}");
    assert!(text.contains("health    1 problem(s)"), "{text}");
    assert!(!status_json.health.ok, "{status_json:#?}");
    let check = fsjournal_fails(&["status", "--check", "--journal", journal]);
    assert!(
        check.contains("not healthy: standby:") && check.contains("failed pushes in a row"),
        "{check}"
    );
    assert!(
        text.contains(&format!("pending {pending} paths (")),
        "{text}"
    );
    // The pending files' sizes as they are now, none extrapolated.
    let pending_files_bytes: u64 = [
        "jobs/alpha/config.xml",
        "jobs/gamma/config.xml",
        "jobs/beta/builds/1/log",
    ]
    .iter()
    .map(|p| std::fs::metadata(scratch.src().join(p)).unwrap().len())
    .sum();
    let pending_bytes = status_json.target().pending_bytes;
    assert!(
        pending_bytes >= pending_files_bytes,
        "{pending_bytes} < {pending_files_bytes}: {status_json:#?}"
    );
    assert!(!status_json.target().pending_bytes_estimated);

    let text = fsjournal(&["targets", "--journal", journal]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one line per target:\n{text}");
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("PENDING")
            && lines[0].contains("LAST ERROR"),
        "{text}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &row[..5],
        [
            "standby",
            daemon.url().as_str(),
            scratch.src().to_str().unwrap(),
            &status_json.target().cursor.to_string(),
            &pending.to_string()
        ],
        "{text}"
    );
    assert!(
        lines[1].contains("in a row) rsync"),
        "the last error is shown:\n{text}"
    );

    let targets: Vec<status::Target> =
        serde_json::from_str(&fsjournal(&["targets", "--json", "--journal", journal])).unwrap();
    assert_eq!(targets.len(), 1);
    let t = &targets[0];
    assert_eq!(
        (t.name.as_str(), t.target.as_str()),
        ("standby", daemon.url().as_str())
    );
    assert_eq!(t.root_path, scratch.src().to_str().unwrap());
    assert_eq!(t.pending, pending);
    assert_eq!(t.full_syncs, 1);
    assert!(t.lag_ms > 0 && t.last_push_ms > 0, "{t:#?}");
    assert!(t.error().contains("rsync"), "{t:#?}");

    let listed = json_lines(&fsjournal(&[
        "pending",
        "--json",
        "--target",
        "standby",
        "--journal",
        journal,
    ]));
    // Journal changes after the cursor, and held paths (none here): the
    // count `status` gives.
    assert_eq!(listed.len() as u64, pending, "{listed:#?}");
    assert!(
        listed.iter().all(|p| p["target"] == "standby"
            && p["reason"] == "journal"
            && p["seq"].as_u64() > Some(t.cursor)),
        "{listed:#?}"
    );
    for path in [
        "jobs/alpha/config.xml",
        "jobs/gamma",
        "jobs/gamma/config.xml",
        "jobs/beta/builds/1/log",
    ] {
        assert!(
            listed.iter().any(|p| p["path"] == path),
            "{path} not pending: {listed:#?}"
        );
    }
    assert!(
        fsjournal_fails(&["pending", "--target", "nope", "--journal", journal])
            .contains("no target named nope")
    );

    let m = scrape(port);
    assert_eq!(
        sample(&m, r#"fsjournal_target_pending_paths{target="standby"}"#),
        pending as f64
    );
    assert!(sample(&m, r#"fsjournal_target_lag_seconds{target="standby"}"#) > 0.0);
    assert_eq!(
        sample(&m, r#"fsjournal_target_pending_bytes{target="standby"}"#),
        pending_bytes as f64
    );
    // Every rsync run is timed and counted by exit code: the full sync
    // succeeded, the pushes since failed.
    assert_eq!(
        sample(
            &m,
            r#"fsjournal_rsync_run_seconds_count{target="standby",mode="full"}"#
        ),
        1.0
    );
    let failed_runs: f64 = m
        .iter()
        .filter(|(name, _)| {
            name.starts_with(r#"fsjournal_rsync_runs_total{target="standby",code=""#)
                && !name.ends_with(r#"code="0"}"#)
        })
        .map(|(_, value)| value)
        .sum();
    assert!(failed_runs >= 1.0, "{m:#?}");
    assert!(
        sample(
            &m,
            r#"fsjournal_target_consecutive_failures{target="standby"}"#
        ) >= 1.0
    );
    assert_eq!(
        sample(&m, r#"fsjournal_target_cursor{target="standby"}"#),
        t.cursor as f64
    );
    assert!(sample(&m, "fsjournal_events_journaled_total") > 0.0);
    assert!(
        sample(&m, "fsjournal_events_captured_total")
            >= sample(&m, "fsjournal_events_journaled_total")
    );
    assert_eq!(
        sample(&m, "fsjournal_journal_last_seq"),
        status_json.last_seq as f64
    );
    assert!(sample(&m, "fsjournal_journal_size_bytes") > 0.0);
    assert_eq!(sample(&m, "fsjournal_rescans_total"), 0.0);
    assert_eq!(
        sample(&m, r#"fsjournal_kernel_events_total{counter="dropped"}"#),
        0.0,
        "fanotify: no kernel counters"
    );

    // The target comes back: everything drains.
    daemon.resume();
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_until(
        Duration::from_secs(30),
        "the pending paths to drain",
        || status(&scratch).target().pending == 0,
    );
    let text = fsjournal(&["status", "--check", "--journal", journal]);
    assert!(text.contains("health    ok"), "{text}");
    let m = scrape(port);
    assert_eq!(
        sample(&m, r#"fsjournal_target_pending_paths{target="standby"}"#),
        0.0
    );
    assert_eq!(
        sample(&m, r#"fsjournal_target_lag_seconds{target="standby"}"#),
        0.0
    );
    assert_eq!(
        sample(
            &m,
            r#"fsjournal_target_consecutive_failures{target="standby"}"#
        ),
        0.0
    );
    assert!(
        fsjournal(&["targets", "--journal", journal])
            .lines()
            .nth(1)
            .unwrap()
            .trim_end()
            .ends_with('-'),
        "no last error"
    );
    agent.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the endpoint stops with the agent"
    );
}

#[test]
fn log_selects_records_by_path_kind_and_range() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    workload::seed(&scratch.src());
    let replica = scratch.replica().display().to_string();
    let config = write_config(&scratch, &replica, None, "");
    use_backend(&config, "fanotify");
    let agent = Agent::start(&config, &scratch);
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    std::fs::create_dir(scratch.src().join("jobs/delta")).unwrap();
    std::fs::write(
        scratch.src().join("jobs/delta/config.xml"),
        "<project>delta</project>\n",
    )
    .unwrap();
    std::fs::write(
        scratch.src().join("jobs/alpha/config.xml"),
        "<project>v2</project>\n",
    )
    .unwrap();
    append(&scratch.src().join("jobs/alpha/builds/1/log"), "more\n");
    wait_until(
        Duration::from_secs(10),
        "the changes to be journaled",
        || {
            let log = journal_log(&scratch);
            journaled(&log, "create", "jobs/delta/config.xml")
                && journaled(&log, "modify", "jobs/alpha/builds/1/log")
        },
    );
    let everything = log_records(&scratch, &[]);

    let configs = log_records(&scratch, &["--path", "jobs/*/config.xml"]);
    assert!(
        configs
            .iter()
            .all(|r| r["path"] == "jobs/delta/config.xml" || r["path"] == "jobs/alpha/config.xml"),
        "{configs:#?}"
    );
    assert!(
        journaled(&configs, "create", "jobs/delta/config.xml")
            && journaled(&configs, "modify", "jobs/alpha/config.xml"),
        "{configs:#?}"
    );
    let journal = scratch.journal();
    let raw = fsjournal(&[
        "log",
        "--json",
        "--path",
        "jobs/*/config.xml",
        "--journal",
        journal.to_str().unwrap(),
    ]);
    assert!(
        json_lines(&raw).iter().all(|r| r.get("start").is_none()),
        "agent starts are left out of a selection:\n{raw}"
    );

    let created = log_records(
        &scratch,
        &["--path", "jobs/*/config.xml", "--kind", "create"],
    );
    assert_eq!(
        created
            .iter()
            .map(|r| r["path"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["jobs/delta/config.xml"],
        "{created:#?}"
    );
    let two_kinds = log_records(
        &scratch,
        &[
            "--kind",
            "create",
            "--kind",
            "modify",
            "--path",
            "jobs/alpha/**",
        ],
    );
    assert!(
        two_kinds
            .iter()
            .all(|r| r["kind"] == "create" || r["kind"] == "modify"),
        "{two_kinds:#?}"
    );
    assert!(
        journaled(&two_kinds, "modify", "jobs/alpha/builds/1/log"),
        "{two_kinds:#?}"
    );
    assert!(
        fsjournal_fails(&[
            "log",
            "--kind",
            "chmod",
            "--journal",
            journal.to_str().unwrap()
        ])
        .contains("rename-from"),
        "the kinds are listed"
    );

    let middle = everything[everything.len() / 2]["seq"].as_u64().unwrap();
    let until = log_records(&scratch, &["--until", &middle.to_string()]);
    assert_eq!(until.last().unwrap()["seq"], middle);
    assert_eq!(until.len(), everything.len() / 2 + 1);
    let range = log_records(
        &scratch,
        &[
            "--since",
            &(middle - 1).to_string(),
            "--until",
            &middle.to_string(),
        ],
    );
    assert_eq!(
        range
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [middle]
    );
    assert!(log_records(&scratch, &["--until", "2000-01-01T00:00:00Z"]).is_empty());
    let last_hour = log_records(&scratch, &["--since", "1h"]);
    assert!(
        last_hour.len() >= everything.len() && last_hour[0]["seq"] == everything[0]["seq"],
        "{last_hour:#?}"
    );
    assert!(log_records(&scratch, &["--since", "2100-01-01 00:00:00"]).is_empty());

    // --follow with --until ends by itself once the journal passes the bound.
    std::fs::create_dir(scratch.src().join("jobs/delta/new")).unwrap();
    wait_until(
        Duration::from_secs(10),
        "the directory to be journaled",
        || journaled(&journal_log(&scratch), "create", "jobs/delta/new"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let bound = status(&scratch).last_seq + 10;
    let mut follow = Reaped(
        Command::new(BIN)
            .args([
                "log",
                "--follow",
                "--json",
                "--path",
                "jobs/delta/new/*",
                "--until",
                &bound.to_string(),
                "--journal",
                journal.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // At least one record per file: the journal passes the bound.
    for i in 0..20 {
        std::fs::write(scratch.src().join(format!("jobs/delta/new/{i}.xml")), "x").unwrap();
    }
    wait_until(
        Duration::from_secs(15),
        "log --follow --until to end by itself",
        || follow.0.try_wait().unwrap().is_some(),
    );
    let mut out = String::new();
    follow
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let followed = json_lines(&out);
    assert!(
        journaled(&followed, "create", "jobs/delta/new/0.xml"),
        "{out}"
    );
    assert!(
        followed.iter().all(|r| r["seq"].as_u64() <= Some(bound)
            && r["path"].as_str().unwrap().starts_with("jobs/delta/new/")),
        "{out}"
    );
    agent.stop();
}

/// A child process killed when the test ends, passed or failed.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The files `install` writes below `root`.
struct Installed {
    unit: PathBuf,
    config: PathBuf,
    journal: PathBuf,
}

impl Installed {
    fn below(root: &Path, config: &str, journal: &str) -> Installed {
        Installed {
            unit: root.join("etc/systemd/system/fsjournal.service"),
            config: root.join(config.trim_start_matches('/')),
            journal: root.join(journal.trim_start_matches('/')),
        }
    }
}

#[test]
fn install_writes_unit_config_and_journal_once_and_uninstall_keeps_data_unless_purged() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    let root_arg = root.to_str().unwrap();
    let files = Installed::below(&root, "/etc/fsjournal/fsjournal.toml", "/var/lib/fsjournal");
    let binary = std::fs::canonicalize(BIN).unwrap();

    let out = fsjournal(&["install", "--root", root_arg]);
    let unit = std::fs::read_to_string(&files.unit).unwrap();
    let exec = format!(
        "ExecStart={} run --config /etc/fsjournal/fsjournal.toml",
        binary.display()
    );
    for line in [
        exec.as_str(),
        "Restart=on-failure",
        "LimitNOFILE=1048576",
        "WantedBy=multi-user.target",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "unit lacks {line:?}:\n{unit}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&files.config).unwrap(),
        fsjournal(&["config", "example"]),
        "the annotated example"
    );
    assert_eq!(
        std::fs::metadata(&files.journal)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    for next in [
        "fsjournal.toml",
        "config check /etc/fsjournal/fsjournal.toml",
        "systemctl daemon-reload && systemctl enable --now fsjournal",
    ] {
        assert!(out.contains(next), "install does not say {next:?}:\n{out}");
    }

    // Again: the operator's configuration stays; a changed unit is replaced.
    std::fs::write(&files.config, "# mine\n").unwrap();
    std::fs::write(&files.unit, "[Service]\nExecStart=/old/fsjournal run\n").unwrap();
    let out = fsjournal(&["install", "--root", root_arg]);
    assert_eq!(std::fs::read_to_string(&files.config).unwrap(), "# mine\n");
    assert!(out.contains("never overwritten"), "{out}");
    assert_eq!(std::fs::read_to_string(&files.unit).unwrap(), unit);
    assert!(out.contains("replaced"), "{out}");
    assert!(fsjournal(&["install", "--root", root_arg]).contains("up to date"));

    // Other paths: the new configuration names the journal, the unit the configuration.
    let other = scratch.path().join("other");
    let elsewhere = Installed::below(&other, "/etc/fsj/standby.toml", "/srv/fsj-journal");
    fsjournal(&[
        "install",
        "--root",
        other.to_str().unwrap(),
        "--config",
        "/etc/fsj/standby.toml",
        "--journal",
        "/srv/fsj-journal",
    ]);
    assert!(std::fs::read_to_string(&elsewhere.unit)
        .unwrap()
        .contains("run --config /etc/fsj/standby.toml\n"));
    assert!(std::fs::read_to_string(&elsewhere.config)
        .unwrap()
        .lines()
        .any(|l| l == "path = \"/srv/fsj-journal\""));
    assert_eq!(
        std::fs::metadata(&elsewhere.journal)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert!(
        fsjournal_fails(&["install", "--root", root_arg, "--config", "relative.toml"])
            .contains("must be an absolute path")
    );

    // Uninstall: the unit and its enablement go, configuration and journal stay.
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink("../fsjournal.service", wants.join("fsjournal.service")).unwrap();
    std::fs::write(files.journal.join("CURRENT"), "MANIFEST-000001\n").unwrap();
    let out = fsjournal(&["uninstall", "--root", root_arg]);
    assert!(
        !files.unit.exists() && !wants.join("fsjournal.service").is_symlink(),
        "{out}"
    );
    assert!(
        files.config.exists() && files.journal.join("CURRENT").exists(),
        "{out}"
    );
    assert!(out.contains("--purge"), "{out}");
    assert!(fsjournal(&["uninstall", "--root", root_arg]).contains("already uninstalled"));

    // --purge refuses a directory that is not a journal, then removes the real ones.
    let not_a_journal = scratch.path().join("not-a-journal");
    std::fs::create_dir_all(not_a_journal.join("var/lib/fsjournal")).unwrap();
    std::fs::write(not_a_journal.join("var/lib/fsjournal/precious"), "data").unwrap();
    assert!(fsjournal_fails(&[
        "uninstall",
        "--purge",
        "--root",
        not_a_journal.to_str().unwrap()
    ])
    .contains("does not look like an fsjournal journal"));
    assert!(not_a_journal.join("var/lib/fsjournal/precious").exists());
    fsjournal(&["uninstall", "--purge", "--root", root_arg]);
    assert!(!files.config.exists() && !files.journal.exists());
    assert!(
        !root.join("etc/fsjournal").exists(),
        "the emptied configuration directory goes too"
    );
    fsjournal(&["uninstall", "--purge", "--root", root_arg]);
}

/// Every `--help` as committed (insta snapshots in `tests/snapshots/`): a
/// change to the interface shows in review. After an intended change,
/// `INSTA_UPDATE=always cargo test -p fsjournal --test cli help` and review
/// the diff (or `cargo insta review`).
#[test]
fn every_help_matches_its_snapshot() {
    let subcommands = [
        "run",
        "status",
        "log",
        "pending",
        "targets",
        "resync",
        "push",
        "verify",
        "config",
        "install",
        "uninstall",
        "unpin",
    ];
    insta::assert_snapshot!("help", fsjournal(&["--help"]));
    for subcommand in subcommands {
        let help = fsjournal(&[subcommand, "--help"]);
        insta::assert_snapshot!(format!("help-{subcommand}"), help);
    }
    let top = fsjournal(&["--help"]);
    let listed: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert_eq!(listed, subcommands, "every subcommand has its snapshot");
}

/// In a terminal (a pseudo-terminal made by util-linux `script`) the agent's
/// full sync draws a progress bar from rsync's `--info=progress2`, and
/// `fsjournal resync` waits for the agent's reply with a spinner; off a
/// terminal (every other test) neither appears.
#[test]
fn in_a_terminal_the_full_sync_shows_progress_and_resync_waits() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    workload::seed(&scratch.src());
    let big = vec![7u8; 8 << 20];
    for i in 0..4 {
        std::fs::write(
            scratch.src().join(format!("jobs/alpha/artifact-{i}.bin")),
            &big,
        )
        .unwrap();
    }
    let typescript = scratch.path().join("typescript");
    let agent = format!(
        "{BIN} run --source {} --dest {} --journal {} --backend fanotify",
        scratch.src().display(),
        scratch.replica().display(),
        scratch.journal().display()
    );
    let mut terminal = Command::new("script")
        .args(["-qfec", &agent])
        .arg(&typescript)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("util-linux script(1)");
    let screen =
        || String::from_utf8_lossy(&std::fs::read(&typescript).unwrap_or_default()).into_owned();
    wait_until(Duration::from_secs(60), "the full sync to end", || {
        screen().contains("full sync done")
    });
    let journal = scratch.journal();
    let resync = format!("{BIN} resync --journal {}", journal.display());
    let waited = Command::new("script")
        .args(["-qfec", &resync, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let waited = String::from_utf8_lossy(&waited.stdout);
    assert!(waited.contains("default: full sync done"), "{waited}");
    let pid = status(&scratch).agent_pid;
    sh("kill", &["-INT", &pid.to_string()]);
    assert!(terminal.wait().unwrap().success());
    let screen = screen();
    assert!(
        screen.contains("full sync to target=\"default\"") && screen.contains("files copied"),
        "no progress bar:\n{screen}"
    );
    assert_eq!(differences(&scratch.src(), &scratch.replica()), "");
}
