//! The operator's commands tell the truth and stay safe (issue 14): the
//! agent is found by the journal's lock whatever its process is called
//! (after a SIGHUP re-exec it is `exe`), `unpin` refuses under a running
//! agent, `status` shows a push that hangs, the metrics endpoint survives a
//! flood of idle connections, a closed pipe ends a command quietly, and
//! names that differ only in escaping print differently.

mod support;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_fsjournal");

/// Runs `fsjournal ARGS` to completion.
fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("FSJOURNAL_LOG")
        .output()
        .unwrap()
}

/// Runs `fsjournal ARGS`, asserts success, returns stdout.
fn fsjournal(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "fsjournal {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The configuration of [`write_config`] with another `batch_delay_ms`.
fn with_batch_delay(config: &Path, ms: u64) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains("batch_delay_ms = 200\n"));
    let text = text.replace(
        "batch_delay_ms = 200\n",
        &format!("batch_delay_ms = {ms}\n"),
    );
    std::fs::write(config, text).unwrap();
}

/// A value of `/proc/PID/status` (`Threads`, …).
fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .parse()
        .unwrap()
}

/// Open descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap()
        .trim()
        .to_string()
}

/// Waits until the agent's log holds `what` `n` times.
fn wait_for_log(agent: &Agent, what: &str, n: usize) {
    wait_until(Duration::from_secs(60), what, || {
        agent.log_text().matches(what).count() >= n
    });
}

#[test]
fn after_a_sighup_reexec_status_check_and_push_wait_still_find_the_agent() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    workload::seed(&scratch.src());
    let config = write_config(&scratch, scratch.replica().to_str().unwrap(), None, "");
    use_backend(&config, "fanotify");
    // Nothing is pushed by itself for a minute: only `push` sends it sooner.
    with_batch_delay(&config, 60_000);
    let agent = start_and_sync(&config, &scratch);
    let journal = scratch.journal();
    let journal = journal.to_str().unwrap();

    sh("kill", &["-HUP", &agent.pid().to_string()]);
    wait_for_log(&agent, "capture armed", 2);
    assert_eq!(
        comm(agent.pid()),
        "exe",
        "the re-exec through /proc/self/exe renames the process"
    );
    let status_json = status(&scratch);
    assert!(status_json.agent_running, "{status_json:#?}");
    assert_eq!(status_json.agent_pid, agent.pid(), "{status_json:#?}");
    let text = fsjournal(&["status", "--check", "--journal", journal]);
    assert!(text.contains("health    ok"), "{text}");
    assert!(
        text.contains(&format!("agent     running, pid {}", agent.pid())),
        "{text}"
    );

    std::fs::write(
        scratch.src().join("after-reload.txt"),
        "pushed on request\n",
    )
    .unwrap();
    wait_until(Duration::from_secs(10), "the change to be pending", || {
        status(&scratch).target().pending >= 1
    });
    let waited = fsjournal(&["push", "--wait", "--journal", journal]);
    assert!(
        !waited.contains("takes it within a second") && !waited.contains("no agent is running"),
        "push --wait did not wait:\n{waited}"
    );
    // It returned after the push, well before the batch delay: the file is
    // there now, not eventually.
    assert_eq!(
        std::fs::read_to_string(scratch.replica().join("after-reload.txt")).unwrap(),
        "pushed on request\n",
        "push --wait returned before the push:\n{waited}"
    );
    agent.stop();
    let stopped = status(&scratch);
    assert!(!stopped.agent_running, "{stopped:#?}");
    let check = run(&["status", "--check", "--journal", journal]);
    assert!(!check.status.success());
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("the agent is not running"),
        "{check:?}"
    );
}

#[test]
fn an_agent_running_under_another_name_is_detected() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    workload::seed(&scratch.src());
    let config = write_config(&scratch, scratch.replica().to_str().unwrap(), None, "");
    use_backend(&config, "fanotify");
    let copy = scratch.path().join("backupd");
    std::fs::copy(BIN, &copy).unwrap();
    let log = scratch.path().join("backupd.log");
    let mut child = Command::new(&copy)
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let reaper = Reaper(&mut child);
    wait_until(Duration::from_secs(60), "the copy to push", || {
        differences(&scratch.src(), &scratch.replica()).is_empty()
    });
    wait_for_full_syncs(&scratch, 1);
    let pid = reaper.0.id();
    assert_eq!(comm(pid), "backupd");
    let status_json = status(&scratch);
    assert!(status_json.agent_running, "{status_json:#?}");
    assert_eq!(status_json.agent_pid, pid, "{status_json:#?}");
    let journal = scratch.journal();
    let text = fsjournal(&["status", "--check", "--journal", journal.to_str().unwrap()]);
    assert!(text.contains("health    ok"), "{text}");
}

/// Kills and reaps a child on drop.
struct Reaper<'a>(&'a mut Child);

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn unpin_refuses_while_an_agent_runs_and_capture_goes_on() {
    support::root_or_skip!();
    let scratch = Scratch::ext4();
    workload::seed(&scratch.src());
    let config = write_config(&scratch, scratch.replica().to_str().unwrap(), None, "");
    let agent = start_and_sync(&config, &scratch);
    let journal = scratch.journal();
    let journal = journal.to_str().unwrap();

    let refused = run(&["unpin", "--journal", journal]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "unpin succeeded under a running agent"
    );
    assert!(
        stderr.contains(&format!("an agent (pid {}) runs on", agent.pid()))
            && stderr.contains("stop the agent first"),
        "{stderr}"
    );
    // Capture was left alone: a change made now still arrives.
    std::fs::write(scratch.src().join("after-unpin.txt"), "still captured\n").unwrap();
    assert_converges(&scratch.src(), &scratch.replica(), &agent);

    agent.stop();
    let unpinned = fsjournal(&["unpin", "--journal", journal]);
    assert!(unpinned.contains("unpinned"), "{unpinned}");
}

#[test]
fn status_shows_a_push_hanging_on_a_silent_target_with_its_age_and_command() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    workload::seed(&scratch.src());
    // A "daemon" that accepts connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().collect();
        drop(held);
    });
    let target = format!("rsync://fsj@127.0.0.1:{port}/backup");
    let password = scratch.path().join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let config = write_config(&scratch, &target, Some(&password), "");
    use_backend(&config, "fanotify");
    let agent = Agent::start(&config, &scratch);
    let journal = scratch.journal();
    let journal = journal.to_str().unwrap();

    wait_until(
        Duration::from_secs(30),
        "the push to be shown in flight",
        || {
            let status = status(&scratch);
            let run = status
                .first_target()
                .and_then(|t| t.push_in_flight.as_ref());
            run.is_some_and(|run| run.age_ms >= 1_500)
        },
    );
    let run = status(&scratch).target().push_in_flight.clone().unwrap();
    // A new target's first run: the full sync's dry run (the safety
    // interlock's preview of what it would delete) hangs first.
    assert_eq!(run.mode, "fullpreview", "{run:#?}");
    assert_eq!(run.pid, agent.pid(), "{run:#?}");
    let command = run.command.as_str();
    assert!(
        command.starts_with("rsync ")
            && command.contains(" --delete ")
            && command.contains(&target),
        "{command}"
    );
    let text = fsjournal(&["status", "--journal", journal]);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("pushing"))
        .unwrap_or_else(|| panic!("no push in flight shown:\n{text}"));
    assert!(
        line.contains("fullpreview run for ") && line.ends_with(command),
        "{line}"
    );
    let table = fsjournal(&["targets", "--journal", journal]);
    assert!(
        table.lines().next().unwrap().contains("PUSHING")
            && table.lines().nth(1).unwrap().contains("fullpreview for "),
        "{table}"
    );
    let targets: Vec<status::Target> =
        serde_json::from_str(&fsjournal(&["targets", "--json", "--journal", journal])).unwrap();
    assert_eq!(
        targets[0]
            .push_in_flight
            .as_ref()
            .map(|run| run.mode.as_str()),
        Some("fullpreview"),
        "{targets:#?}"
    );

    // A killed agent leaves its record behind: nobody shows it as running.
    agent.kill9();
    let after = status(&scratch);
    assert!(after.target().push_in_flight.is_none(), "{after:#?}");
}

#[test]
fn a_flood_of_idle_metrics_connections_costs_bounded_threads_and_pushes_go_on() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    workload::seed(&scratch.src());
    let port = free_port();
    let config = write_config(
        &scratch,
        scratch.replica().to_str().unwrap(),
        None,
        &format!("\n[metrics]\naddress = \"127.0.0.1:{port}\"\n"),
    );
    use_backend(&config, "fanotify");
    let agent = start_and_sync(&config, &scratch);
    let pid = agent.pid();
    let fds_before = open_fds(pid);
    // The agent keeps its own (default) descriptor limit; this test needs
    // room for 2,000 client sockets.
    raise_fd_limit(8192);

    let flood: Vec<TcpStream> = (0..2_000)
        .map(|i| {
            TcpStream::connect(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("connection {i}: {e}"))
        })
        .collect();
    let threads = proc_status(pid, "Threads");
    let fds = open_fds(pid);
    eprintln!("2,000 idle connections: {threads} threads, {fds} descriptors ({fds_before} before)");
    assert!(
        threads <= 64,
        "{threads} threads with 2,000 idle connections"
    );
    assert!(
        fds <= fds_before + 64,
        "{fds} descriptors with 2,000 idle connections ({fds_before} before)"
    );
    // A change made during the flood is pushed.
    std::fs::write(scratch.src().join("during-flood.txt"), "pushed anyway\n").unwrap();
    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let threads = proc_status(pid, "Threads");
    assert!(
        threads <= 64,
        "{threads} threads after a push during the flood"
    );
    assert!(
        !agent.log_text().contains("Too many open files"),
        "{}",
        agent.log_text()
    );
    drop(flood);

    let response = get_metrics(port);
    assert!(
        response.starts_with("HTTP/1.1 200 ") && response.contains("\nfsjournal_agent_up 1\n"),
        "{response}"
    );
    agent.stop();
}

#[test]
fn a_metrics_address_beyond_loopback_is_served_with_a_warning() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    workload::seed(&scratch.src());
    let port = free_port();
    let config = write_config(
        &scratch,
        scratch.replica().to_str().unwrap(),
        None,
        &format!("\n[metrics]\naddress = \"0.0.0.0:{port}\"\n"),
    );
    use_backend(&config, "fanotify");
    let agent = Agent::start(&config, &scratch);
    let log = agent.log_text();
    assert!(
        log.contains("metrics endpoint listens beyond loopback"),
        "no warning for 0.0.0.0:\n{log}"
    );
    let response = get_metrics(port);
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    agent.stop();
}

/// `GET /metrics` on 127.0.0.1:`port`: the whole response, head included.
fn get_metrics(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::io::Write::write_all(&mut stream, b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn raise_fd_limit(n: u64) {
    let limit = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

#[test]
fn names_that_differ_only_by_escaping_print_differently_and_json_gives_their_bytes() {
    support::root_or_skip!();
    let scratch = Scratch::tmpfs();
    workload::seed(&scratch.src());
    let config = write_config(&scratch, scratch.replica().to_str().unwrap(), None, "");
    use_backend(&config, "fanotify");
    with_batch_delay(&config, 60_000);
    let agent = start_and_sync(&config, &scratch);
    let journal = scratch.journal();
    let journal = journal.to_str().unwrap();
    let raw: &[u8] = b"bad\xff";
    let literal: &[u8] = br"bad\xff";
    for name in [raw, literal] {
        std::fs::write(scratch.src().join(std::ffi::OsStr::from_bytes(name)), "x").unwrap();
    }
    wait_until(Duration::from_secs(10), "both names to be pending", || {
        status(&scratch).target().pending >= 2
    });

    let pending = fsjournal(&["pending", "--journal", journal]);
    let shown: Vec<&str> = pending
        .lines()
        .filter_map(|l| l.rsplit('\t').next())
        .filter(|p| p.starts_with("bad"))
        .collect();
    assert_eq!(shown.len(), 2, "{pending}");
    assert!(
        shown.contains(&r"bad\xff") && shown.contains(&r"bad\\xff"),
        "{pending}"
    );

    let listed = json_lines(&fsjournal(&["pending", "--json", "--journal", journal]));
    assert_names_decode(&listed, raw, literal);
    let logged = json_lines(&fsjournal(&[
        "log",
        "--json",
        "--kind",
        "create",
        "--journal",
        journal,
    ]));
    assert_names_decode(&logged, raw, literal);
    let log = fsjournal(&["log", "--kind", "create", "--journal", journal]);
    assert!(
        log.contains(r"/bad\xff ino=") && log.contains(r"/bad\\xff ino="),
        "{log}"
    );

    // Every printing command ends quietly when its reader is gone.
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["log"],
        &["log", "--json"],
        &["pending"],
        &["pending", "--json"],
        &["targets"],
        &["targets", "--json"],
    ] {
        let mut child = Command::new(BIN)
            .args(args)
            .args(["--journal", journal])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?} into a closed pipe: {:?}\n{stderr}",
            out.status
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }
    agent.stop();
}

/// Among `records`, the two names: their `path` strings differ, and each
/// decodes to its exact bytes (`path_bytes` when present, else `path`).
fn assert_names_decode(records: &[Value], raw: &[u8], literal: &[u8]) {
    let decoded: Vec<(String, Vec<u8>)> = records
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("bad")))
        .map(|r| {
            let bytes = match r.get("path_bytes") {
                Some(bytes) => bytes
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
                    .collect(),
                None => r["path"].as_str().unwrap().as_bytes().to_vec(),
            };
            (r["path"].as_str().unwrap().to_string(), bytes)
        })
        .collect();
    assert_eq!(decoded.len(), 2, "{records:#?}");
    assert_ne!(decoded[0].0, decoded[1].0, "{decoded:?}");
    let mut bytes: Vec<&[u8]> = decoded.iter().map(|(_, b)| b.as_slice()).collect();
    bytes.sort();
    let mut expected = vec![raw, literal];
    expected.sort();
    assert_eq!(bytes, expected, "{decoded:?}");
}
